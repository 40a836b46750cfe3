"""The relevance loop: training data from clicks, feedback and the corpus, fine-tuning the embedding
model, the evaluation gate, the model registry with promotion and rollback through index
generations, and the relevance dashboard in the admin."""
