module flarebench

go 1.22
