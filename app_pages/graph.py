from ui.common import not_built

not_built("Graph", "draw the k-nearest-neighbour graph of a sample, with edges between different labels highlighted.")
