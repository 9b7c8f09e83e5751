"""Continuous-relaxation Attend, Infer, Repeat (Eslami et al., 2016) in TensorFlow 1.x graph style."""
