//! The distributed calculation demo: Calculator trait, worker and front end (built in its own issue).
