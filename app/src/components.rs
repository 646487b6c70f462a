//! Pieces shared by every page: the top navigation and the error note.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::error::AppError;

/// The bar at the top of every page, marking the current section.
#[component]
pub fn TopNav() -> impl IntoView {
    let location = use_location();
    let current = move |prefix: &'static str| {
        move || {
            location
                .pathname
                .get()
                .starts_with(prefix)
                .then_some("page")
        }
    };
    view! {
        <header class="topnav">
            <a class="brand" href="/workflows">
                <img src="/favicon.svg" alt="" width="22" height="22"/>
                "Flowscope"
            </a>
            <nav aria-label="Main">
                <a href="/workflows" aria-current=current("/workflows")>"Workflows"</a>
            </nav>
        </header>
    }
}

/// A readable error message, shown where the failed content would have been.
#[component]
pub fn ErrorNote(error: AppError) -> impl IntoView {
    view! {
        <div class="error-note" role="alert">
            <strong>"Could not load this: "</strong>
            {error.to_string()}
        </div>
    }
}
