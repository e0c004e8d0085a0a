//! Message templates: merge fields rendered with minijinja in strict mode (SPEC §3).
//!
//! Rendering never fails silently: a template is checked when it is saved (syntax, and
//! every variable it names must be a known merge field), and rendering with strict undefined
//! behaviour turns any gap into an error instead of a blank sent to a lead. Fuel bounds loops,
//! and there is no loader, so user templates cannot `include` anything.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The merge fields a template may use.
pub const FIELDS: &[&str] = &[
    "lead.first_name",
    "lead.last_name",
    "lead.full_name",
    "lead.email",
    "lead.phone",
    "lead.source",
    "lead.property_address",
    "agent.name",
    "agent.first_name",
    "agent.phone",
    "agent.email",
    "team.name",
    "team.address",
];

#[derive(Debug, Clone, Default, Serialize)]
pub struct LeadFields {
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub source: String,
    pub property_address: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentFields {
    pub name: String,
    pub first_name: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TeamFields {
    pub name: String,
    pub address: String,
}

/// Everything a template can see.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeContext {
    pub lead: LeadFields,
    pub agent: AgentFields,
    pub team: TeamFields,
}

impl MergeContext {
    /// A believable context used to check templates when they are saved and for previews.
    pub fn sample() -> MergeContext {
        MergeContext {
            lead: LeadFields {
                first_name: "Jordan".into(),
                last_name: "Rivera".into(),
                full_name: "Jordan Rivera".into(),
                email: "jordan.rivera@example.com".into(),
                phone: "+15125550134".into(),
                source: "website".into(),
                property_address: "1418 Maple Ave".into(),
            },
            agent: AgentFields {
                name: "Sam Carter".into(),
                first_name: "Sam".into(),
                phone: "+15125550101".into(),
                email: "sam@example.com".into(),
            },
            team: TeamFields {
                name: "Carter Home Team".into(),
                address: "100 Congress Ave, Austin, TX 78701".into(),
            },
        }
    }
}

/// A template that cannot be saved or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

const FUEL: u64 = 50_000;
const MAX_LEN: usize = 20_000;

fn env(html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    if !html {
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    } else {
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    }
    env
}

fn describe(e: &minijinja::Error) -> String {
    let mut m = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if let Some(line) = e.line() {
        m = format!("line {line}: {m}");
    }
    m
}

/// Checks a template body: size, syntax, and that every variable is a known merge field.
pub fn check(body: &str) -> Result<(), TemplateError> {
    if body.len() > MAX_LEN {
        return Err(TemplateError {
            message: format!("is longer than {MAX_LEN} characters"),
        });
    }
    let env = env(false);
    let tmpl = env.template_from_str(body).map_err(|e| TemplateError {
        message: describe(&e),
    })?;
    let mut unknown: Vec<String> = tmpl
        .undeclared_variables(true)
        .into_iter()
        .filter(|v| !FIELDS.contains(&v.as_str()))
        .collect();
    unknown.sort();
    if !unknown.is_empty() {
        return Err(TemplateError {
            message: format!(
                "unknown merge field{} {}; known fields: {}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|u| format!("{{{{ {u} }}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                FIELDS.join(", ")
            ),
        });
    }
    // Catches what the variable scan cannot see (filters that fail, runaway loops).
    render(body, &MergeContext::sample(), false).map(|_| ())
}

/// Renders a template. `html` escapes merge values for an HTML body.
pub fn render(body: &str, ctx: &MergeContext, html: bool) -> Result<String, TemplateError> {
    let env = env(html);
    env.render_str(body, minijinja::value::Serde(ctx))
        .map_err(|e| TemplateError {
            message: describe(&e),
        })
}

/// Renders many merge contexts with the same few template bodies (a dispatch batch), each
/// body parsed and compiled once instead of at every render. Same output and errors as
/// [`render`] without HTML escaping.
pub struct Renderer<'s> {
    env: Environment<'s>,
}

impl Default for Renderer<'_> {
    fn default() -> Self {
        Renderer { env: env(false) }
    }
}

impl<'s> Renderer<'s> {
    pub fn render(&mut self, body: &'s str, ctx: &MergeContext) -> Result<String, TemplateError> {
        let describe_err = |e: minijinja::Error| TemplateError {
            message: describe(&e),
        };
        // The body is its own name: the same text compiles once.
        if self.env.get_template(body).is_err() {
            self.env.add_template(body, body).map_err(describe_err)?;
        }
        self.env
            .get_template(body)
            .and_then(|t| t.render(minijinja::value::Serde(ctx)))
            .map_err(describe_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_merge_fields() {
        let out = render(
            "Hi {{ lead.first_name }}, it's {{ agent.name }}",
            &MergeContext::sample(),
            false,
        )
        .unwrap();
        assert_eq!(out, "Hi Jordan, it's Sam Carter");
    }

    #[test]
    fn a_renderer_gives_what_render_gives_for_every_context() {
        let body = "Hi {{ lead.first_name }}, it's {{ agent.name }}";
        let mut r = Renderer::default();
        let mut other = MergeContext::sample();
        other.lead.first_name = "Ana".into();
        for ctx in [
            MergeContext::sample(),
            other.clone(),
            MergeContext::sample(),
        ] {
            assert_eq!(
                r.render(body, &ctx).unwrap(),
                render(body, &ctx, false).unwrap()
            );
        }
        assert_eq!(r.render(body, &other).unwrap(), "Hi Ana, it's Sam Carter");
        let bad = "ok\n{{ lead.first_name ";
        assert_eq!(
            r.render(bad, &other).unwrap_err().message,
            render(bad, &other, false).unwrap_err().message
        );
        let unknown = "{{ lead.favourite_colour }}";
        assert_eq!(
            r.render(unknown, &other).unwrap_err().message,
            render(unknown, &other, false).unwrap_err().message
        );
    }

    #[test]
    fn unknown_field_is_refused_even_in_an_untaken_branch() {
        let e = check("{% if false %}{{ lead.favourite_colour }}{% endif %}").unwrap_err();
        assert!(e.message.contains("lead.favourite_colour"), "{e}");
        let e = check("Hi {{ first_name }}").unwrap_err();
        assert!(e.message.contains("first_name"), "{e}");
    }

    #[test]
    fn bad_syntax_names_the_line() {
        let e = check("ok\n{{ lead.first_name ").unwrap_err();
        assert!(e.message.contains("line 2"), "{e}");
    }

    #[test]
    fn runaway_loop_runs_out_of_fuel() {
        assert!(
            check(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
            )
            .is_err()
        );
    }

    #[test]
    fn html_rendering_escapes_lead_values() {
        let mut ctx = MergeContext::sample();
        ctx.lead.first_name = "<script>alert(1)</script>".into();
        let out = render("<p>Hi {{ lead.first_name }}</p>", &ctx, true).unwrap();
        assert!(out.contains("&lt;script&gt;"), "{out}");
        let plain = render("Hi {{ lead.first_name }}", &ctx, false).unwrap();
        assert_eq!(plain, "Hi <script>alert(1)</script>");
    }
}
