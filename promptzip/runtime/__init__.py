"""Runtime: where base models live on disk (`store`), and later the one place that builds
onnxruntime sessions and picks devices."""
