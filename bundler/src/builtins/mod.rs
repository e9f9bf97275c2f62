//! sck's built-ins: where regorus' built-in would answer differently from OPA, panic, or run
//! without bound, sck puts its own in its place — on the VM by replacing the entry in the
//! program's resolved built-in table ([`patch_program`]), on the interpreter by registering an
//! extension of the same name ([`register`]; regorus resolves extensions before built-ins).
//! Both call the same function, so the two engines cannot disagree.
//!
//! | built-in | why |
//! |---|---|
//! | `upper`, `lower` | Go's simple case mapping ([`strings`]) |
//! | `count`, `strings.count` | characters, not UTF-16 units; non-overlapping; `strings.count` panicked on `""` ([`strings`]) |
//! | `sprintf` | Go's `fmt` ([`sprintf`]), output bounded |
//! | `regex.*` | Go's ASCII Perl classes ([`regex`]); `regex.template_match` panicked |
//! | `object.subset` | panicked on empty arrays; scalars are an error in OPA ([`objects`]) |
//! | `numbers.range`, `numbers.range_step`, `concat`, `array.concat`, `replace`, `strings.replace_n`, `regex.replace` | output bounded before the call ([`bounds`]) |
//! | `json.filter`, `json.remove` | refused for a path below a scalar, which OPA keeps ([`json_paths`]) |
//! | `indexof`, `indexof_n` | an empty substring is an error ([`strings`]) |
//! | `time.add_date` | Go's `AddDate` normalization (`Jan 31 + 1 month` is `Mar 2`) ([`dates`]) |
//! | `urlquery.decode` | Go's `QueryUnescape` ([`urlquery`]) |
//! | `units.parse`, `units.parse_bytes` | refused where OPA 0.60 and 1.x disagree (exponents, `+`) ([`units`]) |
//! | `+ - * / %`, `sum`, `product`, `format_int` | OPA's 64-bit big-float arithmetic ([`arith`], [`bigfloat`]); the operators through [`arith::patch_program`] on the VM and [`rewrite`] on the interpreter |
//!
//! Invariant: every entry of [`OVERRIDES`] is a regorus built-in of the same arity (tested), and
//! [`scope`] records why an override stopped an evaluation.

pub mod arith;
pub mod bigfloat;
pub mod bounds;
pub mod dates;
pub mod durations;
pub mod json_paths;
pub mod objects;
pub mod regex;
pub mod rewrite;
pub mod scope;
pub mod sprintf;
pub mod strings;
pub mod units;
pub mod urlquery;

use std::sync::Arc;

use regorus::rvm::instructions::{BuiltinCallParams, Instruction};
use regorus::rvm::program::{BuiltinInfo, Program};
use regorus::unstable::{Expr, Ref, Source, Span, BUILTINS};
use regorus::{Engine, Value};

/// A built-in's signature in regorus.
pub type Fcn = fn(&Span, &[Ref<Expr>], &[Value], bool) -> anyhow::Result<Value>;

/// One built-in sck evaluates itself.
pub struct Override {
    pub name: &'static str,
    pub nargs: u8,
    pub fcn: Fcn,
}

/// Every built-in sck puts in place of regorus'.
pub const OVERRIDES: &[Override] = &[
    Override {
        name: "upper",
        nargs: 1,
        fcn: strings::upper,
    },
    Override {
        name: "lower",
        nargs: 1,
        fcn: strings::lower,
    },
    Override {
        name: "count",
        nargs: 1,
        fcn: strings::count,
    },
    Override {
        name: "strings.count",
        nargs: 2,
        fcn: strings::strings_count,
    },
    Override {
        name: "sprintf",
        nargs: 2,
        fcn: sprintf::sprintf,
    },
    Override {
        name: "regex.match",
        nargs: 2,
        fcn: regex::regex_match,
    },
    Override {
        name: "regex.is_valid",
        nargs: 1,
        fcn: regex::regex_is_valid,
    },
    Override {
        name: "regex.split",
        nargs: 2,
        fcn: regex::regex_split,
    },
    Override {
        name: "regex.find_n",
        nargs: 3,
        fcn: regex::regex_find_n,
    },
    Override {
        name: "regex.find_all_string_submatch_n",
        nargs: 3,
        fcn: regex::regex_find_all_string_submatch_n,
    },
    Override {
        name: "regex.replace",
        nargs: 3,
        fcn: bounds::regex_replace,
    },
    Override {
        name: "regex.template_match",
        nargs: 4,
        fcn: regex::template_match,
    },
    Override {
        name: "numbers.range",
        nargs: 2,
        fcn: bounds::range,
    },
    Override {
        name: "numbers.range_step",
        nargs: 3,
        fcn: bounds::range_step,
    },
    Override {
        name: "concat",
        nargs: 2,
        fcn: bounds::concat,
    },
    Override {
        name: "array.concat",
        nargs: 2,
        fcn: bounds::array_concat,
    },
    Override {
        name: "replace",
        nargs: 3,
        fcn: bounds::replace,
    },
    Override {
        name: "strings.replace_n",
        nargs: 2,
        fcn: bounds::replace_n,
    },
    Override {
        name: "object.subset",
        nargs: 2,
        fcn: objects::subset,
    },
    Override {
        name: "json.filter",
        nargs: 2,
        fcn: json_paths::filter,
    },
    Override {
        name: "json.remove",
        nargs: 2,
        fcn: json_paths::remove,
    },
    Override {
        name: "indexof",
        nargs: 2,
        fcn: strings::indexof,
    },
    Override {
        name: "indexof_n",
        nargs: 2,
        fcn: strings::indexof_n,
    },
    Override {
        name: "time.add_date",
        nargs: 4,
        fcn: dates::add_date_ns,
    },
    Override {
        name: "time.parse_duration_ns",
        nargs: 1,
        fcn: durations::parse_duration_ns,
    },
    Override {
        name: "urlquery.decode",
        nargs: 1,
        fcn: urlquery::decode,
    },
    Override {
        name: "units.parse",
        nargs: 1,
        fcn: units::parse,
    },
    Override {
        name: "units.parse_bytes",
        nargs: 1,
        fcn: units::parse_bytes,
    },
    Override {
        name: "format_int",
        nargs: 2,
        fcn: arith::format_int,
    },
    Override {
        name: "sum",
        nargs: 1,
        fcn: arith::sum,
    },
    Override {
        name: "product",
        nargs: 1,
        fcn: arith::product,
    },
];

fn find(name: &str) -> Option<&'static Override> {
    OVERRIDES.iter().find(|o| o.name == name)
}

/// Calls regorus' own built-in `name`.
pub(crate) fn delegate(
    name: &str,
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    let (fcn, _) = BUILTINS
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("regorus has no built-in {name}"))?;
    fcn(span, params, args, strict)
}

/// A string argument, or the type error regorus would give.
pub(crate) fn string_arg<'a>(name: &str, value: &'a Value) -> anyhow::Result<&'a str> {
    match value {
        Value::String(s) => Ok(s),
        _ => anyhow::bail!("`{name}` expects string arguments"),
    }
}

/// Puts sck's built-ins in place of regorus' in a compiled VM program, its arithmetic in
/// place of the VM's arithmetic instructions ([`arith::patch_program`]) and a conflict check
/// in place of partial object insertions ([`objects::patch_program`]).
pub fn patch_program(program: &mut Arc<Program>) -> bool {
    let Some(program) = Arc::get_mut(program) else {
        return false;
    };
    for (index, info) in program.builtin_info_table.iter().enumerate() {
        if let (Some(o), Some(slot)) = (find(&info.name), program.resolved_builtins.get_mut(index))
        {
            *slot = (o.fcn, o.nargs);
        }
    }
    let mut patcher = Patcher {
        program,
        added: Vec::new(),
    };
    arith::patch_program(&mut patcher);
    objects::patch_program(&mut patcher);
    true
}

/// Replaces VM instructions by calls of sck built-ins, one instruction for one (so no jump
/// moves), each new built-in added to the program's table once.
pub struct Patcher<'a> {
    program: &'a mut Program,
    added: Vec<(&'static str, u16)>,
}

impl Patcher<'_> {
    /// Replaces every instruction `pick` maps to `(name, fcn, dest, argument registers)` by a
    /// call of `fcn` with those registers, its result in `dest`.
    pub fn replace(
        &mut self,
        pick: impl Fn(&Instruction) -> Option<(&'static str, Fcn, u8, Vec<u8>)>,
    ) {
        for pc in 0..self.program.instructions.len() {
            let Some((name, fcn, dest, registers)) = pick(&self.program.instructions[pc]) else {
                continue;
            };
            let nargs = registers.len() as u8;
            let builtin_index = match self.added.iter().find(|(n, _)| *n == name) {
                Some((_, index)) => *index,
                None => {
                    self.program.resolved_builtins.push((fcn, nargs));
                    let index = self.program.add_builtin_info(BuiltinInfo {
                        name: name.to_owned(),
                        num_args: u16::from(nargs),
                    });
                    self.added.push((name, index));
                    index
                }
            };
            let mut args = [0u8; 8];
            args[..registers.len()].copy_from_slice(&registers);
            let params_index = self.program.add_builtin_call_params(BuiltinCallParams {
                dest,
                builtin_index,
                num_args: nargs,
                args,
            });
            self.program.instructions[pc] = Instruction::BuiltinCall { params_index };
        }
    }
}

/// The span and argument expressions a built-in gets when called outside regorus' own call
/// sites (the interpreter's extension path gives none), as regorus' VM makes them.
fn placeholders(n: usize) -> anyhow::Result<(Span, Vec<Ref<Expr>>)> {
    let source = Source::from_contents("<builtin>".into(), String::new())?;
    let span = Span {
        source,
        line: 1,
        col: 1,
        start: 0,
        end: 0,
    };
    let params = (0..n)
        .map(|_| {
            Ref::new(Expr::Null {
                span: span.clone(),
                value: Value::Null,
                eidx: 0,
            })
        })
        .collect();
    Ok((span, params))
}

/// Calls `fcn` as regorus calls a built-in, in non-strict mode.
pub fn call_plain(fcn: Fcn, args: &[Value]) -> anyhow::Result<Value> {
    let (span, params) = placeholders(args.len())?;
    fcn(&span, &params, args, false)
}

/// Registers sck's built-ins as interpreter extensions. An extension's error would end the
/// evaluation, so an ordinary built-in error becomes undefined here, as in regorus' (and OPA's)
/// non-strict mode; a stop recorded by [`scope`] stays an error.
pub fn register(engine: &mut Engine) -> anyhow::Result<()> {
    let operators = arith::Op::ALL.map(|op| (op.builtin(), 2, op.fcn()));
    let overrides = OVERRIDES.iter().map(|o| (o.name, o.nargs, o.fcn));
    for (name, nargs, fcn) in overrides.chain(operators) {
        engine.add_extension(
            name.to_owned(),
            nargs,
            Box::new(move |args: Vec<Value>| match call_plain(fcn, &args) {
                Ok(value) => Ok(value),
                Err(e) if e.downcast_ref::<regorus::LimitError>().is_some() => Err(e),
                Err(_) => Ok(Value::Undefined),
            }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_override_replaces_a_regorus_builtin_of_the_same_arity() {
        for o in OVERRIDES {
            let (_, nargs) = BUILTINS
                .get(o.name)
                .unwrap_or_else(|| panic!("{} is not a regorus built-in", o.name));
            assert_eq!(*nargs, o.nargs, "{}", o.name);
        }
    }
}
