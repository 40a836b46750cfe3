"""Text analysis shared by indexing and search: terms (CJK bigrams), language detection, query
cleaning and highlighting. Pure Python with no Django, so every index backend and the evaluation get
exactly the same terms."""
