from ui.common import not_built

not_built("Audit", "find likely label errors, outliers and near-duplicates, and write corrected labels back to Qdrant.")
