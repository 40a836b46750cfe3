"""Access explained to admins: effective access of a user, why a user sees a document, who sees it."""
