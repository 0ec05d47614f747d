"""Code-interpreter tasks: problems that need execution, each checked in a Jupyter kernel.

A problem is accepted only when its reference solution, run in a real kernel through the
same session the agent gets (`session.KernelSession`), prints the answer the generator
computed on its own, and when the answer cannot be read off or guessed from the problem
(`pipeline`). The agent's answer is graded by `pipelines.answers.check_answer`, the check that
accepted the task.
"""
