//! The SCIM attribute schema as data (RFC 7643 §4, §7, §8.7).
//!
//! Every rule the server applies to attributes — case sensitivity in filters, mutability on
//! writes, `returned` on reads, the `/Schemas` discovery document — is read from these tables,
//! so what `/Schemas` advertises is by construction what the server does.

/// RFC 7643 §2.3 attribute data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

use super::query::Relation;

/// Where an attribute's values are kept: schema data, so that filters, sorting and the
/// store read it here instead of each deciding by the attribute's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// In the resource's attribute document, at the attribute's path.
    Document,
    /// In the document and in a column of the resource's row, where filters and sorting
    /// compare it (indexed; `userName` also normalized).
    Column(Column),
    /// In rows of a relation table, not in the document.
    Relation(Relation),
}

/// A column of a resource's row that holds an attribute (`Stored::Column`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A user's `userName` (`user_name`, and `user_name_norm` folded for comparisons).
    UserName,
    /// A user's `active`.
    Active,
    /// A group's `displayName` (`display_name`).
    DisplayName,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: &'static [AttrDef],
    pub description: &'static str,
    /// Where its values are kept.
    pub stored: Stored,
}

impl AttrDef {
    const fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        AttrDef {
            name,
            ty,
            multi: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical: &[],
            reference_types: &[],
            sub: &[],
            description,
            stored: Stored::Document,
        }
    }
    const fn stored(mut self, at: Stored) -> Self {
        self.stored = at;
        self
    }
    const fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }
    const fn canonical(mut self, c: &'static [&'static str]) -> Self {
        self.canonical = c;
        self
    }
    const fn refs(mut self, r: &'static [&'static str]) -> Self {
        self.reference_types = r;
        self
    }
    const fn sub(mut self, s: &'static [AttrDef]) -> Self {
        self.sub = s;
        self
    }

    /// Looks up a sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attr(&self, name: &str) -> Option<&'static AttrDef> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether string comparisons on this attribute ignore case (`caseExact: false` strings).
    pub fn folds_case(&self) -> bool {
        !self.case_exact && matches!(self.ty, AttrType::String | AttrType::Reference)
    }

    /// Whether this is a multi-valued complex attribute whose elements are objects.
    pub fn is_multi_complex(&self) -> bool {
        self.multi && self.ty == AttrType::Complex
    }
}

use AttrType::*;

const fn s(name: &'static str, d: &'static str) -> AttrDef {
    AttrDef::new(name, String, d)
}

/// `value`, `display`, `type`, `primary`: the usual shape of a multi-valued attribute.
macro_rules! mv_subs {
    ($value:expr, $types:expr) => {
        &[
            $value,
            s(
                "display",
                "A human-readable name, primarily used for display purposes.",
            ),
            s("type", "A label indicating the attribute's function.").canonical($types),
            AttrDef::new(
                "primary",
                Boolean,
                "Indicates the 'primary' or preferred attribute value.",
            ),
        ]
    };
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const NAME_SUBS: &[AttrDef] = &[
    s("formatted", "The full name, formatted for display."),
    s("familyName", "The family name of the User."),
    s("givenName", "The given name of the User."),
    s("middleName", "The middle name(s) of the User."),
    s("honorificPrefix", "The honorific prefix(es) of the User."),
    s("honorificSuffix", "The honorific suffix(es) of the User."),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    s(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    s("streetAddress", "The full street address component."),
    s("locality", "The city or locality component."),
    s("region", "The state or region component."),
    s("postalCode", "The zip code or postal code component."),
    s(
        "country",
        "The country name component (ISO 3166-1 alpha-2).",
    ),
    s("type", "A label indicating the attribute's function.").canonical(&["work", "home", "other"]),
    AttrDef::new(
        "primary",
        Boolean,
        "Indicates the 'primary' or preferred address.",
    ),
];

const USER_GROUPS_SUBS: &[AttrDef] = &[
    s("value", "The identifier of the User's group.").mutability(Mutability::ReadOnly),
    AttrDef::new(
        "$ref",
        Reference,
        "The URI of the corresponding Group resource.",
    )
    .refs(&["Group"])
    .mutability(Mutability::ReadOnly),
    s("display", "A human-readable name for the group.").mutability(Mutability::ReadOnly),
    s("type", "How the membership was derived.")
        .canonical(&["direct", "indirect"])
        .mutability(Mutability::ReadOnly),
];

pub const USER_ATTRS: &[AttrDef] = &[
    s(
        "userName",
        "Unique identifier for the User, issued by the provisioning client.",
    )
    .required()
    .unique()
    .stored(Stored::Column(Column::UserName)),
    AttrDef::new("name", Complex, "The components of the user's real name.").sub(NAME_SUBS),
    s(
        "displayName",
        "The name of the User, suitable for display to end-users.",
    ),
    s("nickName", "The casual way to address the user."),
    AttrDef::new(
        "profileUrl",
        Reference,
        "A fully qualified URL to the User's profile.",
    )
    .refs(&["external"]),
    s("title", "The user's title, such as \"Vice President\"."),
    s(
        "userType",
        "The relationship between the organization and the user.",
    ),
    s(
        "preferredLanguage",
        "The User's preferred written or spoken language.",
    ),
    s(
        "locale",
        "The User's default location for localizing output.",
    ),
    s("timezone", "The User's time zone in the 'Olson' format."),
    AttrDef::new("active", Boolean, "The User's administrative status.")
        .stored(Stored::Column(Column::Active)),
    s(
        "password",
        "The User's cleartext password. Accepted and discarded: never stored.",
    )
    .mutability(Mutability::WriteOnly)
    .returned(Returned::Never),
    AttrDef::new("emails", Complex, "Email addresses for the user.")
        .multi()
        .sub(mv_subs!(
            s("value", "Email address for the user."),
            &["work", "home", "other"]
        )),
    AttrDef::new("phoneNumbers", Complex, "Phone numbers for the User.")
        .multi()
        .sub(mv_subs!(
            s("value", "Phone number of the User."),
            &["work", "home", "mobile", "fax", "pager", "other"]
        )),
    AttrDef::new("ims", Complex, "Instant messaging addresses for the User.")
        .multi()
        .sub(mv_subs!(
            s("value", "Instant messaging address for the User."),
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        )),
    AttrDef::new("photos", Complex, "URLs of photos of the User.")
        .multi()
        .sub(mv_subs!(
            AttrDef::new("value", Reference, "URL of a photo of the User.").refs(&["external"]),
            &["photo", "thumbnail"]
        )),
    AttrDef::new(
        "addresses",
        Complex,
        "A physical mailing address for this User.",
    )
    .multi()
    .sub(ADDRESS_SUBS),
    AttrDef::new(
        "groups",
        Complex,
        "Groups to which the user belongs (read-only).",
    )
    .multi()
    .mutability(Mutability::ReadOnly)
    .sub(USER_GROUPS_SUBS)
    .stored(Stored::Relation(Relation::Groups)),
    AttrDef::new("entitlements", Complex, "Entitlements for the User.")
        .multi()
        .sub(mv_subs!(s("value", "The value of an entitlement."), &[])),
    AttrDef::new("roles", Complex, "Roles for the User.")
        .multi()
        .sub(mv_subs!(s("value", "The value of a role."), &[])),
    AttrDef::new(
        "x509Certificates",
        Complex,
        "X.509 certificates issued to the User.",
    )
    .multi()
    .sub(mv_subs!(
        AttrDef::new("value", Binary, "The value of an X.509 certificate.").case_exact(),
        &[]
    )),
];

pub const ENTERPRISE_USER_ATTRS: &[AttrDef] = &[
    s(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    s("costCenter", "Identifies the name of a cost center."),
    s("organization", "Identifies the name of an organization."),
    s("division", "Identifies the name of a division."),
    s("department", "Identifies the name of a department."),
    AttrDef::new("manager", Complex, "The User's manager.").sub(&[
        s(
            "value",
            "The id of the SCIM resource representing the User's manager.",
        ),
        AttrDef::new(
            "$ref",
            Reference,
            "The URI of the SCIM resource representing the manager.",
        )
        .refs(&["User"]),
        s("displayName", "The displayName of the User's manager.").mutability(Mutability::ReadOnly),
    ]),
];

pub const GROUP_ATTRS: &[AttrDef] = &[
    s("displayName", "A human-readable name for the Group.")
        .required()
        .stored(Stored::Column(Column::DisplayName)),
    AttrDef::new("members", Complex, "A list of members of the Group.")
        .multi()
        .stored(Stored::Relation(Relation::Members))
        .sub(&[
            s("value", "Identifier of the member of this Group.")
                .mutability(Mutability::Immutable)
                .case_exact(),
            AttrDef::new("$ref", Reference, "The URI of the member resource.")
                .refs(&["User", "Group"])
                .mutability(Mutability::Immutable),
            s("type", "The type of the member.")
                .canonical(&["User", "Group"])
                .mutability(Mutability::Immutable),
            s(
                "display",
                "The member's userName or displayName; returned only when requested.",
            )
            .mutability(Mutability::ReadOnly)
            .returned(Returned::Request),
        ]),
];

/// A schema (RFC 7643 §7).
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attrs: &'static [AttrDef],
}

impl SchemaDef {
    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        self.attrs
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

pub static USER: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attrs: USER_ATTRS,
};
pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attrs: ENTERPRISE_USER_ATTRS,
};
pub static GROUP: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attrs: GROUP_ATTRS,
};

/// A resource type (RFC 7643 §6): a core schema and its extensions.
#[derive(Debug)]
pub struct ResourceTypeDef {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static SchemaDef,
    pub extensions: &'static [&'static SchemaDef],
}

pub static USER_TYPE: ResourceTypeDef = ResourceTypeDef {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[&ENTERPRISE_USER],
};
pub static GROUP_TYPE: ResourceTypeDef = ResourceTypeDef {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

pub static ALL_SCHEMAS: [&SchemaDef; 3] = [&USER, &GROUP, &ENTERPRISE_USER];
pub static RESOURCE_TYPES: [&ResourceTypeDef; 2] = [&USER_TYPE, &GROUP_TYPE];

/// Where an attribute lives: in the core schema or in an extension (keyed by its URN).
#[derive(Debug, Clone, Copy)]
pub struct Located {
    /// `None` for the core schema, the extension's URN otherwise.
    pub extension: Option<&'static str>,
    pub def: &'static AttrDef,
}

/// The attributes every resource has beside its schema (RFC 7643 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonAttr {
    Id,
    ExternalId,
    MetaCreated,
    MetaLastModified,
    MetaResourceType,
    MetaVersion,
    MetaLocation,
    Schemas,
}

/// A resolved top-level attribute reference.
#[derive(Debug, Clone, Copy)]
pub enum Resolved {
    Common(CommonAttr),
    Attr(Located),
}

impl ResourceTypeDef {
    /// Schemas that are valid in this resource's `schemas` attribute.
    pub fn schema_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.schema.id).chain(self.extensions.iter().map(|e| e.id))
    }

    /// Every top-level attribute definition, core and extensions.
    pub fn schema_defs(&self) -> impl Iterator<Item = &'static AttrDef> + '_ {
        self.schema
            .attrs
            .iter()
            .chain(self.extensions.iter().flat_map(|e| e.attrs.iter()))
    }

    pub fn extension(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .copied()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves an attribute named with an optional schema URN, case-insensitively.
    /// `sub` is the sub-attribute (needed to resolve `meta.created`).
    pub fn resolve(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<Resolved> {
        match urn {
            Some(u) if u.eq_ignore_ascii_case(self.schema.id) => self.resolve_core(name, sub),
            Some(u) => {
                let ext = self.extension(u)?;
                ext.attr(name).map(|def| {
                    Resolved::Attr(Located {
                        extension: Some(ext.id),
                        def,
                    })
                })
            }
            None => self.resolve_core(name, sub),
        }
    }

    fn resolve_core(&self, name: &str, sub: Option<&str>) -> Option<Resolved> {
        let common = match name.to_ascii_lowercase().as_str() {
            "id" => Some(CommonAttr::Id),
            "externalid" => Some(CommonAttr::ExternalId),
            "schemas" => Some(CommonAttr::Schemas),
            "meta" => match sub.map(str::to_ascii_lowercase).as_deref() {
                Some("created") => Some(CommonAttr::MetaCreated),
                Some("lastmodified") => Some(CommonAttr::MetaLastModified),
                Some("resourcetype") => Some(CommonAttr::MetaResourceType),
                Some("version") => Some(CommonAttr::MetaVersion),
                Some("location") => Some(CommonAttr::MetaLocation),
                _ => return None,
            },
            _ => None,
        };
        if let Some(c) = common {
            return Some(Resolved::Common(c));
        }
        self.schema.attr(name).map(|def| {
            Resolved::Attr(Located {
                extension: None,
                def,
            })
        })
    }
}

/// Attribute definitions are static: two are the same attribute when they are the same entry.
impl PartialEq for AttrDef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each column and each relation holds exactly one attribute, a top-level one of the
    /// resource type whose row or table it is: what filters and the store rely on.
    #[test]
    fn storage_places_are_held_once() {
        let held: Vec<(&str, &str, Stored)> = [&USER_TYPE, &GROUP_TYPE]
            .iter()
            .flat_map(|rt| {
                rt.schema
                    .attrs
                    .iter()
                    .filter(|a| a.stored != Stored::Document)
                    .map(|a| (rt.name, a.name, a.stored))
            })
            .collect();
        assert_eq!(
            held,
            vec![
                ("User", "userName", Stored::Column(Column::UserName)),
                ("User", "active", Stored::Column(Column::Active)),
                ("User", "groups", Stored::Relation(Relation::Groups)),
                ("Group", "displayName", Stored::Column(Column::DisplayName)),
                ("Group", "members", Stored::Relation(Relation::Members)),
            ]
        );
        // Extensions and sub-attributes live in the document.
        for rt in [&USER_TYPE, &GROUP_TYPE] {
            for ext in rt.extensions {
                assert!(ext.attrs.iter().all(|a| a.stored == Stored::Document));
            }
            for a in rt.schema.attrs {
                assert!(a.sub.iter().all(|s| s.stored == Stored::Document));
            }
        }
    }
}
