-- The token call as the service makes it, sent straight to the MondiaPay stand-in.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
