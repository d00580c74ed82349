from serving.gateway.cli import main

main()
