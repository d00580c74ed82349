"""`python -m bench.peers` (`make bench-peers`): the serving stacks a user would otherwise build, measured
side by side with ours in one run; see bench/peers/run.py."""
