//! Users, API tokens and secrets (admin), and who the caller is (anyone signed in).
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/me` | the caller: name, role, how they signed in |
//! | GET | `/users` | users with their roles |
//! | POST | `/users` | `{"name", "password", "role"}`; 201 |
//! | PUT | `/users/{id}` | `{"role"}` and/or `{"password"}` (signs them out everywhere) |
//! | DELETE | `/users/{id}` | delete (never the last admin) |
//! | GET | `/tokens` | API tokens: name, role, creator, last use, revocation |
//! | POST | `/tokens` | `{"name", "role"}`; 201 with `token`, shown this once |
//! | DELETE | `/tokens/{id}` | revoke at once |
//! | GET | `/secrets` | names and history, never values |
//! | PUT | `/secrets/{name}` | `{"value"}`: sealed and stored; 204 |
//! | DELETE | `/secrets/{name}` | delete |
//!
//! The role each needs is in `auth::need` (admin for all but `/me`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use engine::access::{check_name, check_secret_name, Principal, Role};
use engine::access::{SecretInfo, TokenInfo, UserInfo};
use engine::executor::Engine;
use engine::store::{now_ms, Store};
use serde::{Deserialize, Serialize};

use super::runs::json_body;
use super::ApiState;
use crate::auth::{check_password, hash_blocking, new_token, sha256_hex};
use crate::error::ApiError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/me", get(me))
        .route("/users", get(users).post(create_user))
        .route("/users/{id}", put(update_user).delete(delete_user))
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/secrets", get(secrets))
        .route("/secrets/{name}", put(put_secret).delete(delete_secret))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "access", responses((status = 200, body = Principal), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn me(Extension(caller): Extension<Principal>) -> Json<Principal> {
    Json(caller)
}

#[derive(Serialize, utoipa::ToSchema)]
struct Users {
    users: Vec<UserInfo>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct UserView {
    id: i64,
    name: String,
    role: Role,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CreatedUser {
    user: UserView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Tokens {
    tokens: Vec<TokenInfo>,
}

/// A new token: `token` is shown this once (only its hash is kept).
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedToken {
    id: i64,
    name: String,
    role: Role,
    token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Secrets {
    secrets: Vec<SecretInfo>,
}

fn role(value: &str) -> Result<Role, ApiError> {
    Role::parse(value).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "role \"{value}\" is not one of viewer, operator, editor, admin"
        ))
    })
}

#[utoipa::path(get, path = "/api/v1/users", tag = "access", responses((status = 200, body = Users), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn users(State(store): State<Store>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Users {
        users: store.users().await?,
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    role: String,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body(content((NewUser = "application/json"))), responses((status = 201, body = CreatedUser), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn create_user(
    State(store): State<Store>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: NewUser = json_body(&headers, &body)?;
    let name = body.name.trim().to_string();
    check_name("user", &name).map_err(ApiError::BadRequest)?;
    check_password(&body.password).map_err(ApiError::BadRequest)?;
    let role = role(&body.role)?;
    let hash = hash_blocking(body.password).await?;
    let id = store.create_user(&name, &hash, role, now_ms()).await?;
    tracing::info!(user = %name, %role, "user created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserView { id, name, role },
        }),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Option<String>,
    password: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "access", params(("id" = i64, Path, description = "The user's id")), request_body(content((UserChange = "application/json"))), responses((status = 204, description = "Changed"), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn update_user(
    State(store): State<Store>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: UserChange = json_body(&headers, &body)?;
    if body.role.is_none() && body.password.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to change: give \"role\" and/or \"password\"".into(),
        ));
    }
    if let Some(password) = &body.password {
        check_password(password).map_err(ApiError::BadRequest)?;
    }
    if let Some(r) = &body.role {
        store.set_user_role(id, role(r)?).await?;
    }
    if let Some(password) = body.password {
        let hash = hash_blocking(password).await?;
        store.set_user_password(id, &hash).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "access", params(("id" = i64, Path, description = "The user's id")), responses((status = 204, description = "Deleted"), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn delete_user(
    State(store): State<Store>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    store.delete_user(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access", responses((status = 200, body = Tokens), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn tokens(State(store): State<Store>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Tokens {
        tokens: store.tokens().await?,
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body(content((NewToken = "application/json"))), responses((status = 201, body = CreatedToken), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn create_token(
    State(store): State<Store>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: NewToken = json_body(&headers, &body)?;
    let name = body.name.trim().to_string();
    check_name("token", &name).map_err(ApiError::BadRequest)?;
    let role = role(&body.role)?;
    let token = new_token();
    let id = store
        .create_token(
            &name,
            &sha256_hex(&token),
            role,
            Some(&caller.name),
            now_ms(),
        )
        .await?;
    tracing::info!(token = %name, %role, by = %caller.name, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            name,
            role,
            token,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access", params(("id" = i64, Path, description = "The token's id")), responses((status = 204, description = "Revoked"), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn revoke_token(
    State(store): State<Store>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    if store.revoke_token(id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no live API token with id {id}"
        )))
    }
}

#[utoipa::path(get, path = "/api/v1/secrets", tag = "access", responses((status = 200, body = Secrets), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn secrets(State(engine): State<Engine>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Secrets {
        secrets: engine.secret_infos().await?,
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "access", params(("name" = String, Path, description = "The secret's name (letters, digits, _)")), request_body(content((SecretValue = "application/json"))), responses((status = 204, description = "Stored, sealed"), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn put_secret(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    check_secret_name(&name).map_err(ApiError::BadRequest)?;
    let body: SecretValue = json_body(&headers, &body)?;
    if body.value.is_empty() {
        return Err(ApiError::BadRequest("the secret's value is empty".into()));
    }
    engine
        .put_secret(&name, &body.value, caller.actor().as_deref())
        .await?;
    tracing::info!(secret = %name, by = %caller.name, "secret stored");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "access", params(("name" = String, Path, description = "The secret's name (letters, digits, _)")), responses((status = 204, description = "Deleted"), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn delete_secret(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if engine.delete_secret(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no stored secret \"{name}\"")))
    }
}
