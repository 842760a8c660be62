"""Test-only: run one of our entry points and SIGKILL it at a chosen pipeline step.

    python -m tests.support.killstep STEP WHEN PROGRAM [ARGS...]

STEP is a pipeline step name (runtime_hooks.pipeline.STEPS); WHEN is before | after | during
(during: quota only, once the first loop image is mounted over its directory) | undone (once the
step's undo has run, e.g. in `rich rm`). PROGRAM is rich, rich-runtime or rich-hook.

The kill is wired in here, by wrapping pipeline.run_step in this process, so that nothing in
production code (no environment variable an image could set) can reach it.
"""

import os
import signal
import sys


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv):
    step, when, program = argv[:3]
    from runtime_hooks import pipeline
    real_step = pipeline.run_step

    def run_step(name, plan, paths, env):
        if name == step and when == "before":
            _die()
        real_step(name, plan, paths, env)
        if name == step and when == "after":
            _die()
    pipeline.run_step = run_step
    if step == "quota" and when == "during":
        from runtime_hooks.quota import loopfs
        real_mount = loopfs._mount_image

        def mount_image(*a, **kw):
            dev = real_mount(*a, **kw)
            _die()
            return dev
        loopfs._mount_image = mount_image
    if when == "undone":
        real_undo = pipeline._UNDO[step]

        def undo(*a):
            real_undo(*a)
            _die()
        pipeline._UNDO[step] = undo
    sys.argv = [program] + argv[3:]
    if program == "rich":
        from runtime_hooks.cli import main as entry
    elif program == "rich-runtime":
        from runtime_hooks.wrapper import main as entry
    else:
        from runtime_hooks.hook import main as entry
    return entry()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
