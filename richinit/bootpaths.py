"""Paths PID 1 looks at before the services loader has run (a module of constants: importing the
data model for them would cost the app's start a millisecond or more).

INIT_DIRS and RC_LOCAL are where init scripts live (richinit.services.compat reads them; PID 1 only
checks whether any exist, to start the app before the loader when there is none); DEV_LOG is the
syslog socket PID 1 binds before anything starts.
"""

INIT_DIRS = (("/etc/cont-init.d", "s6-overlay"), ("/etc/my_init.d", "my_init"),
             ("/etc/richinit/init.d", "richinit"))
RC_LOCAL = "/etc/rc.local"
DEV_LOG = "/dev/log"
