from ui.common import not_built

not_built("Explore", "draw the collection as an interactive 2D map (UMAP, t-SNE or PCA) colored by label, with a gallery of selected points.")
