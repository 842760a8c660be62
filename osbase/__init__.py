"""The ground floor: OS primitives that richinit, lxcfs and runtime_hooks stand on.

Nothing here imports any other package of this project. Each module has one shape:
small functions over the kernel interface, OSError raised with an errno and a
message that names what failed, and the /proc (or cgroup) root as a parameter so
callers can point them at fixture trees.

Modules are imported on demand (``from osbase import procfs``); importing the
package itself costs nothing, which keeps PID 1's steady state lean.
"""
