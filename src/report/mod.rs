//! Reports: merge node results, compute statistics, write HTML, JSON and text.
