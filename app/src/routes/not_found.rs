//! The 404 page, rendered for any unknown path with a real 404 status.

use leptos::prelude::*;
use leptos_meta::Title;

/// Shown for unknown routes; sets the HTTP status to 404 during server rendering.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Not found"/>
        <section class="page empty-state">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <a class="button" href="/workflows">"Go to workflows"</a>
        </section>
    }
}
