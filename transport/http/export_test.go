package http

// FormatOf is formatOf, for the tests.
var FormatOf = formatOf
