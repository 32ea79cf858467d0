module lmpipe.example/client

go 1.19
