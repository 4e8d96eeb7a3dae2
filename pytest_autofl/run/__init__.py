"""Running candidates for real: the only harness code that imports nvflare or torch (in the processes it
starts). Runners, the FLARE job, the evaluator, process trees, prefork, ports, and the environments."""
