module pgveil

go 1.26.8

require github.com/brianvoe/gofakeit/v7 v7.18.1
