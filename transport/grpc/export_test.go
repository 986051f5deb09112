package grpc

// OpeningMD is openingMD, for the external tests.
var OpeningMD = openingMD
