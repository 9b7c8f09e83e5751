"""The model wing: the AIR graph, its distributions, networks and spatial transformer. It imports
nothing from the other wings."""
