//! Planning of `rule` commands: rules from flags or a JSON file, validated as the server does,
//! and `rule set` as a read-change-write of the stored rule.

use portcullis_policy::rules::{Rule, RuleAction};
use serde_json::Value;

use crate::api_types::{self, encode};

use super::args::*;
use super::call::*;
use super::values::*;

impl RuleEdit {
    /// The PUT of `rule`, the answer of the GET `call`, with the flags applied.
    pub(super) fn put(&self, call: &Call, mut rule: Rule) -> Result<Call, String> {
        // Written only over the version read: a change made in between is never undone.
        let read = api_types::rule_version(&rule);
        apply_rule_flags(&self.flags, &mut rule)?;
        api_types::validate_rule(&mut rule, &self.tenant)?;
        let path = format!("{}?if_version={}", call.path, encode(&read));
        Ok(Call::new(Method::Put, path, call.output.clone())
            .body(&rule)
            .json(call.json))
    }
}

pub(super) fn parse_rule_name(s: &str) -> Result<String, String> {
    api_types::parse_connector_name(s).map_err(|e| e.replace("connector name", "rule name"))
}

pub(super) fn rule_path(tenant: &str, name: &str) -> Result<String, String> {
    let base = tenant_path(tenant)?;
    Ok(format!("{base}/rules/{}", encode(&parse_rule_name(name)?)))
}

/// A rule from its JSON with the tenant (and, if given, the name) replaced; the fields the JSON
/// leaves out get their serde defaults, as on the server.
pub(super) fn rule_from_json(
    mut v: Value,
    tenant: &str,
    name: Option<&str>,
) -> Result<Rule, String> {
    let Value::Object(map) = &mut v else {
        return Err("a rule must be a JSON object".to_string());
    };
    map.insert("tenant".into(), tenant.into());
    if let Some(name) = name {
        map.insert("name".into(), name.into());
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// `--from-file`: the rule in the file, for `tenant`, named `name` if given.
pub(super) fn read_rule_file(
    file: &std::path::Path,
    tenant: &str,
    name: Option<&str>,
) -> Result<Rule, String> {
    let what = || format!("--from-file {}", file.display());
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", what()))?;
    let v = serde_json::from_str(&text).map_err(|e| format!("invalid JSON in {}: {e}", what()))?;
    rule_from_json(v, tenant, name).map_err(|e| format!("invalid rule in {}: {e}", what()))
}

impl ActionFlags {
    /// The actions given, in the fixed order; `None` when no action flag was given.
    pub(super) fn actions(&self) -> Result<Option<Vec<RuleAction>>, String> {
        let mut actions = Vec::new();
        if self.quarantine {
            actions.push(RuleAction::Quarantine);
        }
        if self.reject {
            actions.push(RuleAction::Reject {
                code: self
                    .reject_code
                    .as_deref()
                    .unwrap_or(DEFAULT_REJECT_CODE)
                    .trim()
                    .to_string(),
                text: self
                    .reject_text
                    .as_deref()
                    .unwrap_or(DEFAULT_REJECT_TEXT)
                    .to_string(),
            });
        }
        if let Some(to) = list_flag(&self.redirect_to) {
            actions.push(RuleAction::RedirectTo(to));
        }
        for h in &self.set_headers {
            let (name, value) = split_header("--set-header", h)?;
            actions.push(RuleAction::SetHeader { name, value });
        }
        for name in &self.remove_headers {
            actions.push(RuleAction::RemoveHeader(name.trim().to_string()));
        }
        if let Some(p) = &self.prepend_subject {
            actions.push(RuleAction::PrependSubject(p.clone()));
        }
        if let Some(n) = self.set_scl {
            actions.push(RuleAction::SetScl(n));
        }
        Ok(Some(actions).filter(|a| !a.is_empty()))
    }
}

/// Applies the flags given to `rule`: `rule add` starts from a new rule, `rule set` from the
/// stored one. The values are parsed here; the whole rule is checked by `validate_rule`.
pub(super) fn apply_rule_flags(f: &RuleFlags, rule: &mut Rule) -> Result<(), String> {
    let s = &f.settings;
    if let Some(p) = s.priority {
        rule.priority = p;
    }
    if let Some(v) = &s.sender_address_location {
        rule.sender_address_location = from_label(
            "--sender-address-location",
            v,
            "header, envelope or header-or-envelope",
        )?;
    }
    if let Some(v) = &s.mode {
        rule.mode = from_label("--mode", v, "enforce or audit")?;
    }
    if let Some(v) = on_off("--stop-processing", &s.stop_processing)? {
        rule.stop_processing = v;
    }
    if let Some(v) = clearable(&s.activate_at) {
        rule.activate_at = v.map(|t| parse_time("--activate-at", t)).transpose()?;
    }
    if let Some(v) = clearable(&s.expire_at) {
        rule.expire_at = v.map(|t| parse_time("--expire-at", t)).transpose()?;
    }
    if let Some(v) = enabled_flag(&s.disabled, &s.enabled)? {
        rule.enabled = v;
    }
    f.conditions.apply(&mut rule.conditions)?;
    f.exceptions.apply(&mut rule.exceptions)?;
    if let Some(actions) = f.actions.actions()? {
        rule.actions = actions;
    }
    Ok(())
}

pub(super) fn plan_rule(c: &RuleCommand) -> Result<Call, String> {
    Ok(match c {
        RuleCommand::Add {
            name,
            tenant,
            flags,
        } => {
            let base = tenant_path(tenant)?;
            let mut rule = match &flags.from_file {
                Some(file) => read_rule_file(file, tenant, name.as_deref())?,
                None => {
                    if flags.settings.priority.is_none() {
                        return Err("missing --priority N (0 is evaluated first)".to_string());
                    }
                    let new = serde_json::json!({"priority": 0, "actions": []});
                    let mut rule = rule_from_json(new, tenant, name.as_deref())?;
                    apply_rule_flags(flags, &mut rule)?;
                    rule
                }
            };
            api_types::validate_rule(&mut rule, tenant)?;
            Call::new(
                Method::Post,
                format!("{base}/rules"),
                Output::Confirm(format!("rule {:?} added", rule.name)),
            )
            .body(&rule)
            .json(flags.json)
        }
        RuleCommand::List { tenant, json } => Call::new(
            Method::Get,
            format!("{}/rules", tenant_path(tenant)?),
            Output::RuleList,
        )
        .json(*json),
        RuleCommand::Show { name, tenant, json } => {
            Call::new(Method::Get, rule_path(tenant, name)?, Output::Rule).json(*json)
        }
        RuleCommand::Set {
            name,
            tenant,
            flags,
        } => {
            let path = rule_path(tenant, name)?;
            let output = Output::Confirm(format!("rule {name:?} updated"));
            if let Some(file) = &flags.from_file {
                let mut rule = read_rule_file(file, tenant, Some(name))?;
                api_types::validate_rule(&mut rule, tenant)?;
                return Ok(Call::new(Method::Put, path, output)
                    .body(&rule)
                    .json(flags.json));
            }
            // Every value is checked now, on a stand-in for the stored rule (nothing is sent when
            // one is bad); the edited rule is checked again before the PUT.
            let stand_in = serde_json::json!({"priority": 0, "actions": ["quarantine"]});
            let mut rule = rule_from_json(stand_in, tenant, Some(name))?;
            apply_rule_flags(flags, &mut rule)?;
            api_types::validate_rule(&mut rule, tenant)?;
            let mut call = Call::new(Method::Get, path, output).json(flags.json);
            call.edit = Some(RuleEdit {
                tenant: tenant.clone(),
                flags: flags.clone(),
            });
            call
        }
        RuleCommand::Remove { name, tenant } => Call::new(
            Method::Delete,
            rule_path(tenant, name)?,
            Output::Confirm(format!("rule {name:?} removed")),
        ),
        RuleCommand::Test(a) => simulate_call(a, Output::RuleTest)?,
    })
}
