"""run/envs"""
