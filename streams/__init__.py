"""Kafka: the topic catalogue, the clients (one module builds them all), the faust app
factory and the producers."""
