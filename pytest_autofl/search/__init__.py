"""The campaign: the ``Search`` facade and its parts — state, seed protocol, calibration, coordination between
xdist workers, the verdict row, reruns, candidate files and the final held-out score."""
