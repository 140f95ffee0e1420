//! Settings chosen by name on the command line (`--activation gelu`): the names an enum
//! offers. A leaf module, so the enums' own modules and `settings` can all use it.

pub trait Choice: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}
