"""richinit: a PID 1 supervisor that makes an OCI container behave like the VM it replaces."""

__version__ = "0.1.0"
