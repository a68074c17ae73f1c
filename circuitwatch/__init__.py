"""circuitwatch: watch the BOPIS / curbside cancellation circuit close, or not."""

__version__ = "0.1.0"
