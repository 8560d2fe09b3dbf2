mod appserver;
mod cli;
mod scripted_model;
mod store;
mod shared;
