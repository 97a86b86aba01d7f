package refs

import (
	"pgveil/schema"
	"testing"
)

func col(table, name string) Column {
	return Column{Table: schema.TableName{Schema: "public", Name: table}, Name: name}
}

func TestModelAddKeepsOrderAndFirstOrigin(t *testing.T) {
	var m Model
	m.Add(Ref{From: col("payment", "staff_id"), To: col("staff", "staff_id"), Origin: Partition})
	m.Add(Ref{From: col("payment", "customer_id"), To: col("customer", "customer_id"), Origin: Declared})
	m.Add(Ref{From: col("payment", "staff_id"), To: col("staff", "staff_id"), Origin: Inferred})
	if len(m.Refs) != 2 {
		t.Fatalf("got %d refs, want 2", len(m.Refs))
	}
	if m.Refs[0].From.Name != "customer_id" || m.Refs[1].Origin != Partition {
		t.Fatalf("refs = %+v", m.Refs)
	}
	if got := m.To(col("staff", "staff_id")); len(got) != 1 || got[0].From != col("payment", "staff_id") {
		t.Fatalf("To = %+v", got)
	}
	if got := m.From(col("payment", "customer_id")); len(got) != 1 || got[0].To.String() != "public.customer.customer_id" {
		t.Fatalf("From = %+v", got)
	}
}
