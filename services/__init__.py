"""Where the outside world plugs in: storage, HTTP API, Kafka relay, workers, CLI."""
