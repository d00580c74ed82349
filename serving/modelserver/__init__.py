"""A small model server that speaks TensorFlow Serving's gRPC and REST protocol.

For development machines without Docker and for tests. Production runs the official
`tensorflow/serving` image; this server loads the same SavedModels, config files and flags, and answers
the same requests with the same messages, status codes and metric names.
"""
