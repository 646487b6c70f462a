//! Flowscope's web UI (Leptos, rendered on the server and hydrated in the browser).
//!
//! - [`shell`] and [`App`]: the HTML document and the router.
//! - `routes/`: one file per page, each with the server functions it calls.
//! - [`error`]: the typed error server functions send to the browser.
//! - `components`: pieces shared by pages (navigation, badges).
//! - `charts`: plotters charts rendered on the server, every mark a link.
//!
//! Server-only code sits behind the `ssr` feature; the browser bundle (`hydrate`) never
//! compiles the database or tokio.

pub mod auth;
pub mod charts;
pub mod components;
pub mod error;
pub mod routes;
pub mod run_form;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute, SsrMode};

/// The policy of every page: scripts only from this server and the inline ones carrying the
/// response's nonce (hydration and streaming), the wasm bundle compiled, styles from this
/// server and inline (bars and charts are sized by style attributes), nothing framed.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The stylesheet's address, content-hashed when the site was built with hashes (the server
/// provides it; the shell links it).
#[derive(Debug, Clone)]
pub struct StyleHref(pub String);

/// The whole HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(value) = http::HeaderValue::from_str(&content_security_policy(&nonce.to_string()))
        {
            response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    let style =
        use_context::<StyleHref>().map_or_else(|| "/pkg/flowscope.css".to_string(), |s| s.0);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" id="leptos" href=style/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The router: every page of SPEC §5 that exists so far.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(auth::Me(Resource::new(|| (), |_| auth::whoami())));
    // Effects run only in the browser, after hydration: tests wait for this marker.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title formatter=page_title/>
        <Router>
            <components::TopNav/>
            <main id="main">
                <Routes fallback=routes::not_found::NotFound>
                    <Route path=path!("/") view=|| view! { <Redirect path="/workflows"/> }/>
                    <Route path=path!("/workflows") view=routes::workflows::WorkflowsPage/>
                    <Route path=path!("/workflows/new") view={Lazy::<NewBuilder>::new()}/>
                    <Route path=path!("/workflows/:id/edit") view={Lazy::<EditBuilder>::new()}/>
                    // Async: the status (404 for an unknown id) is known before headers go out.
                    <Route path=path!("/workflows/:id") view=routes::workflow::WorkflowPage ssr=SsrMode::Async/>
                    <Route path=path!("/runs") view=routes::runs::RunsPage/>
                    <Route path=path!("/runs/:id") view=routes::run::RunPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=routes::login::LoginPage/>
                    <Route path=path!("/setup") view=routes::login::SetupPage/>
                    <Route path=path!("/settings") view=routes::settings::SettingsPage/>
                </Routes>
            </main>
        </Router>
    }
}

// The builder (forms, YAML, the template checker, validation) is the largest part of the
// bundle and the least visited: in a release build split with `--split` it is a chunk of its
// own, fetched when a builder page is opened.

/// `/workflows/new`, lazily loaded.
#[derive(Clone)]
pub struct NewBuilder;

#[lazy_route]
impl LazyRoute for NewBuilder {
    fn data() -> Self {
        NewBuilder
    }

    fn view(_this: Self) -> AnyView {
        view! { <routes::builder::NewWorkflowPage/> }.into_any()
    }
}

/// `/workflows/:id/edit`, lazily loaded.
#[derive(Clone)]
pub struct EditBuilder;

#[lazy_route]
impl LazyRoute for EditBuilder {
    fn data() -> Self {
        EditBuilder
    }

    fn view(_this: Self) -> AnyView {
        view! { <routes::builder::EditWorkflowPage/> }.into_any()
    }
}

/// The browser entry point, called by the hydration script.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Hydrates asynchronously: a lazily loaded route's chunk arrives before its part hydrates.
    leptos::mount::hydrate_lazy(App);
}

/// The document title for a page's `<Title>`. leptos_meta writes the server's `<title>` as
/// raw HTML, so there the text (a workflow's name, say) is escaped; the browser sets
/// `document.title`, which is text already.
fn page_title(text: String) -> String {
    let title = if text.is_empty() {
        "Flowscope".to_string()
    } else {
        format!("{text} · Flowscope")
    };
    #[cfg(feature = "ssr")]
    let title = escape_html(&title);
    title
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
