"""Kafka: the topic catalogue, the faust app factory and the producers."""
