//! The sandbox's two pages, built without a template engine: only digits and the sandbox's
//! own purchase token are put into them.

/// MondiaPay's purchase page: confirm, pay with an empty balance, or cancel.
pub(super) const INITIATE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>MondiaPay sandbox: confirm your purchase</title>
<style>
 body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center; padding: 1.5rem;
        background: #eef1f6; font: 1.0625rem/1.5 system-ui, sans-serif; color: #1f1f1f; }
 main { max-width: 26rem; width: 100%; background: #fff; border-radius: 1rem; padding: 2rem 1.75rem; box-shadow: 0 2px 8px rgb(0 0 0 / .1); }
 .badge { display: inline-block; font-size: .8rem; background: #ffe8a3; border-radius: .5rem; padding: .1rem .5rem; }
 h1 { font-size: 1.4rem; margin: .75rem 0; } .price { font-size: 1.25rem; font-weight: 600; }
 button { display: block; width: 100%; margin-top: .75rem; padding: .8rem; font-size: 1rem; border-radius: .6rem; border: 1px solid #c4c7c5; background: #fff; cursor: pointer; }
 button.primary { background: #1a56db; color: #fff; border-color: #1a56db; }
</style></head>
<body><main>
 <span class="badge">Sandbox: no real money</span>
 <h1>Confirm your purchase</h1>
 <p>Demo subscription (type <strong>{type}</strong>)</p>
 <p class="price">1.99 per week, charged to your mobile bill</p>
 <form action="/v1/web/purchase/initiate/{token}" method="post">
  <button class="primary" id="confirm" name="decision" value="confirm">Confirm purchase</button>
  <button id="insufficient" name="decision" value="insufficient_funds">Pay with an empty balance</button>
  <button id="decline" name="decision" value="cancel">Cancel</button>
 </form>
</main></body></html>
"#;

/// An unknown, expired or already used purchase link.
pub(super) const NO_LONGER_VALID: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MondiaPay sandbox: link no longer valid</title></head>
<body><main><h1>This purchase link is no longer valid</h1>
<p>Start the purchase again at the shop.</p></main></body></html>
"#;
