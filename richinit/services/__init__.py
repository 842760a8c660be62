"""Service definitions: the data model (spec), the loader (load), start order (graph), peer layouts (compat).

Kept empty on purpose: PID 1 imports only `richinit.services.spec`, and importing this package must not
drag in yaml, json or ctypes.
"""
