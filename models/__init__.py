"""Models: the twin zoo (`zoo/`), data (`data`), exporters (`exporters/`), in-process runtimes
(`runtimes/`), the parity gate, artifact inspection and the in-process floor benchmark."""
