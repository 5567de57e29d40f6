from ui.common import not_built

not_built("Search", "find similar images by an uploaded image, a text query or an existing point.")
