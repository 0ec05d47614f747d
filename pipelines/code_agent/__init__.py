"""The code-agent pipeline: issue–PR pairs → verified repository environments (DESIGN §9).

sources → filters → environment-setup agent → three-state JUnit runs × N → F2P / P2F → accept.
"""
