//! The pages, as maud templates: each module loads what it shows through the engine (the calls
//! the JSON API makes) and renders it; `layout` is the frame they share.

pub mod config;
pub mod experiment;
pub mod layout;
pub mod list;
pub mod login;
mod parts;
pub mod plots;
