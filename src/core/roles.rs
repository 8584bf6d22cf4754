//! Group-to-role mappings: an organization's IdP groups (by displayName, case-insensitive,
//! or by externalId) grant app roles. The store keeps the grants in step with memberships,
//! group names and login claims (`store::roles`).

use super::error::{CoreError, CoreResult};
use super::model::OrgId;
use super::store::RoleMapping;
use super::{new_id, now};

/// A validated new mapping.
pub fn new_mapping(
    org: &OrgId,
    match_on: &str,
    group: &str,
    role: &str,
) -> CoreResult<RoleMapping> {
    let match_on = match match_on {
        m if m.eq_ignore_ascii_case("displayName") => "displayName",
        m if m.eq_ignore_ascii_case("externalId") => "externalId",
        other => {
            return Err(CoreError::InvalidValue(format!(
                "match_on \"{other}\": use displayName or externalId"
            )));
        }
    };
    let group = group.trim();
    let role = role.trim();
    if group.is_empty() || role.is_empty() || group.len() > 256 || role.len() > 128 {
        return Err(CoreError::InvalidValue(
            "a mapping needs a group (≤ 256 characters) and a role (≤ 128)".into(),
        ));
    }
    if role.chars().any(char::is_control) || group.chars().any(char::is_control) {
        return Err(CoreError::InvalidValue(
            "group and role may not contain control characters".into(),
        ));
    }
    Ok(RoleMapping {
        id: new_id(),
        org_id: org.clone(),
        match_on: match_on.to_owned(),
        group_value: group.to_owned(),
        role: role.to_owned(),
        created_at: now(),
    })
}
