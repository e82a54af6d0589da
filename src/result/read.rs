//! Streaming reader of result XML.
