//! A component built against a WIT major version the host does not support (2.0.0),
//! for testing that the host refuses it with a clear sentence. It has no manifest.

wit_bindgen::generate!({
    inline: "
        package ringleader:plugin@2.0.0;
        interface installer-api {
            info: func() -> string;
        }
        world installer {
            export installer-api;
        }
    ",
    world: "installer",
});

struct Future;

impl exports::ringleader::plugin::installer_api::Guest for Future {
    fn info() -> String {
        "from the future".into()
    }
}

export!(Future);
