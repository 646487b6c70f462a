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
    view! {
        <Title formatter=page_title/>
        <Router>
            <components::TopNav/>
            <main id="main">
                <Routes fallback=|| view! { <routes::not_found::NotFound/><Ready/> }>
                    <Route path=path!("/") view=|| view! { <Redirect path="/workflows"/> }/>
                    <Route path=path!("/workflows") view=|| view! { <routes::workflows::WorkflowsPage/><Ready/> }/>
                    <Route path=path!("/workflows/new") view={Lazy::<NewBuilder>::new()}/>
                    <Route path=path!("/workflows/:id/edit") view={Lazy::<EditBuilder>::new()}/>
                    // Async: the status (404 for an unknown id) is known before headers go out.
                    <Route path=path!("/workflows/:id") view={Lazy::<WorkflowRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/runs") view={Lazy::<RunsRoute>::new()}/>
                    <Route path=path!("/runs/:id") view={Lazy::<RunRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=|| view! { <routes::login::LoginPage/><Ready/> }/>
                    <Route path=path!("/setup") view=|| view! { <routes::login::SetupPage/><Ready/> }/>
                    <Route path=path!("/settings") view={Lazy::<SettingsRoute>::new()}/>
                </Routes>
            </main>
        </Router>
    }
}

// Every page but the workflow list (where people land) and sign-in is loaded lazily: in a
// release build split with `--split` each is a chunk of its own (code they share goes to shared
// chunks), so the first page's wasm holds Leptos, the shell and that page. A page's chunks are
// preloaded with it when it is the page loaded, and fetched once when it is navigated to.
// The builder (forms, YAML, the template checker, validation) is the largest of them.

/// Marks `<body data-hydrated>` once the page it ends has hydrated: effects run only in the
/// browser, after hydration, and a lazily loaded page hydrates only when its chunk has come,
/// after the rest of the app. Tests wait for this marker before they act.
#[component]
fn Ready() -> impl IntoView {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// A route whose page component is loaded lazily.
macro_rules! lazy_page {
    ($(#[$doc:meta])* $name:ident => $page:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name;

        #[lazy_route]
        impl LazyRoute for $name {
            fn data() -> Self {
                $name
            }

            fn view(_this: Self) -> AnyView {
                view! { {$page}<Ready/> }.into_any()
            }
        }
    };
}

lazy_page!(
    /// `/workflows/new`.
    NewBuilder => routes::builder::NewWorkflowPage()
);
lazy_page!(
    /// `/workflows/:id/edit`.
    EditBuilder => routes::builder::EditWorkflowPage()
);
lazy_page!(
    /// `/workflows/:id`: one workflow, its charts, versions and diff.
    WorkflowRoute => routes::workflow::WorkflowPage()
);
lazy_page!(
    /// `/runs`: the monitor.
    RunsRoute => routes::runs::RunsPage()
);
lazy_page!(
    /// `/runs/:id`: one run.
    RunRoute => routes::run::RunPage()
);
lazy_page!(
    /// `/settings`.
    SettingsRoute => routes::settings::SettingsPage()
);

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
