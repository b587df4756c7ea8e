"""Gymnasium environments shipped with worldsim (installed as worldsim.envs)."""
