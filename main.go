// Command katana is an HTTP caching proxy that resizes and converts images.
package main

func main() {}
