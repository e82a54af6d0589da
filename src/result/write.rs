//! Writer of result XML.
