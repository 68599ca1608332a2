"""Networks: plain nn.Modules that know nothing of Lightning, data or charsets beyond a class count."""
