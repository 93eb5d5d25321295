"""Load tests for authbench: Locust scenarios, the matrix runner, and the processes they drive."""
